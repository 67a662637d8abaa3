"""What the study asks of a Slurm cluster, checked against the cluster before submitting.

:class:`SlurmOptions` are the resources of every array task of ``spineseg study --executor
slurm``, turned into submitit's parameters. The defaults fit a GPU cluster and the ``paper``
profile: one GPU per run, asked as ``--gpus-per-node`` (``gres`` asks for it as a named
generic resource instead, ``--gres=<gres>:<n>``, for clusters that name their GPUs). The
``smoke`` and ``cpu`` profiles train on the CPU and get no GPU (``gpus=0``), so they run on a
CPU partition. Account, QOS and constraint have their own fields; any other ``sbatch`` option
passes through ``sbatch``.

The memory asked per task follows the profile (:func:`default_mem_gb`): a few GB for the
``smoke`` and ``cpu`` profiles, which a small node serves, 32 GB for ``paper``.

:func:`check_options` and :func:`check_cluster` turn a combination the cluster would reject
into one :class:`~spineseg_core.errors.ConfigError` naming the option, before anything is
submitted: GPUs asked for a CPU profile, a partition ``sinfo`` does not list, GPUs on a
partition whose nodes have none, more CPUs, memory or GPUs per task than its largest node
has. :func:`queue_states` reads the array's tasks from ``squeue`` — it needs no
accounting database (``sacct``), which small clusters often lack.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spineseg_core.errors import ConfigError

CPU_PROFILES = frozenset({"smoke", "cpu"})
"""Profiles sized to train on a CPU: their runs ask for no GPU."""

PENDING_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                            "RESV_DEL_HOLD", "SUSPENDED", "PREEMPTED", "RESIZING"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"})
"""``squeue`` states of an array task that has not ended (any other state, or a task
``squeue`` no longer lists, has ended)."""


def default_gpus(profile: str) -> int:
    """GPUs per run when ``--slurm-gpus`` is not given: none for a CPU profile, else one."""
    return 0 if profile in CPU_PROFILES else 1


PROFILE_MEM_GB: dict[str, int] = {"smoke": 4, "cpu": 6, "paper": 32}
"""Memory per array task by profile (``--slurm-mem-gb`` when not given), with room over what
was measured here (peak resident memory, ``/usr/bin/time -v``, phantom generation included,
U-Net, torch 2.13): 1.0 GB for ``spineseg train --profile smoke``, 1.4 GB for one short epoch
of the cpu profile (80 phantom cases at 256 px); heavier models, HD95 and the papermill kernel
add a few hundred MB. The paper profile's 880 px slices and its cache of 240 volumes need far
more (about 12 GB to build its phantom)."""


def default_mem_gb(profile: str) -> int:
    """GB of memory per run when ``--slurm-mem-gb`` is not given (:data:`PROFILE_MEM_GB`; an
    unknown profile gets the paper profile's)."""
    return PROFILE_MEM_GB.get(profile, PROFILE_MEM_GB["paper"])


def parse_sbatch_options(items: Sequence[str]) -> dict[str, Any]:
    """``["exclusive", "mail-type=END"]`` -> ``{"exclusive": True, "mail-type": "END"}``:
    extra ``sbatch`` options as submitit's ``slurm_additional_parameters``."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not key or (sep and not value):
            raise ConfigError(f"--slurm-sbatch {item!r}: expected OPTION or OPTION=VALUE, "
                              "an sbatch long option without its dashes (e.g. mail-type=END)")
        options[key] = value if sep else True
    return options


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of each array task. ``None`` leaves the cluster's default (partition,
    account, QOS, constraint); ``sbatch`` holds any other sbatch option (``KEY: value``, or
    ``KEY: True`` for a flag)."""

    timeout_min: int = 240
    gpus: int = 1
    gres: str | None = None
    cpus_per_task: int = 8
    mem_gb: int = PROFILE_MEM_GB["paper"]
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int = 16
    max_num_timeout: int = 5
    sbatch: dict[str, Any] = field(default_factory=dict)

    def executor_parameters(self, name: str) -> dict[str, Any]:
        """Keyword arguments of submitit's ``AutoExecutor.update_parameters``."""
        params: dict[str, Any] = dict(
            name=name, timeout_min=self.timeout_min, cpus_per_task=self.cpus_per_task,
            mem_gb=self.mem_gb, slurm_array_parallelism=self.array_parallelism)
        if self.gpus and self.gres:
            params["slurm_gres"] = f"{self.gres}:{self.gpus}"
        elif self.gpus:
            params["gpus_per_node"] = self.gpus
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(self, key):
                params[f"slurm_{key}"] = getattr(self, key)
        if self.sbatch:
            params["slurm_additional_parameters"] = dict(self.sbatch)
        return params


def check_options(options: SlurmOptions, profile: str, device: str = "auto") -> None:
    """Raise one :class:`ConfigError` naming the option for a combination that cannot work,
    whatever the cluster: negative counts, GPUs for a CPU profile, a GPU device without GPUs,
    a GPU profile without GPUs unless the CPU is asked for (``-p device cpu``). The device
    itself is checked on the node, where the run executes
    (:func:`~spineseg_core.training.device.resolve_device`)."""
    for flag, value, least in (("--slurm-gpus", options.gpus, 0),
                               ("--slurm-cpus", options.cpus_per_task, 1),
                               ("--slurm-mem-gb", options.mem_gb, 1),
                               ("--slurm-timeout-min", options.timeout_min, 1),
                               ("--slurm-parallelism", options.array_parallelism, 1)):
        if value < least:
            raise ConfigError(f"{flag} {value}: expected {least} or more")
    if options.gpus and profile in CPU_PROFILES:
        raise ConfigError(f"--slurm-gpus {options.gpus}: the {profile} profile trains on the "
                          "CPU; use --slurm-gpus 0 (a CPU partition) or a GPU profile (paper)")
    if options.gres and not options.gpus:
        raise ConfigError(f"--slurm-gres {options.gres}: names the GPU resource, but "
                          "--slurm-gpus is 0; give --slurm-gpus N")
    if device == "cuda" and not options.gpus:
        raise ConfigError("-p device cuda: the runs get no GPU with --slurm-gpus 0; "
                          "give --slurm-gpus N or leave device at auto")
    if device == "auto" and not options.gpus and profile not in CPU_PROFILES:
        raise ConfigError(f"--slurm-gpus 0: the {profile} profile is sized for a GPU and its "
                          "runs would refuse to start on a node without one; give "
                          "--slurm-gpus N, or -p device cpu to train on the CPUs anyway")


def _run(command: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout,
                          check=False)


SINFO_FORMAT = "%P|%G|%c|%m"
"""``sinfo --format``: partition (the default ends in ``*``), generic resources, CPUs per node,
memory per node in MB; one line per group of like nodes."""


def _count(text: str) -> int | None:
    """``"64"``, ``"64+"`` (sinfo's "at least") -> 64; anything else -> ``None``."""
    text = text.strip().rstrip("+")
    return int(text) if text.isdigit() else None


def _gpu_count(gres: str) -> int:
    """GPUs in one generic resource such as ``gpu:a100:4(S:0-1)`` (4); ``gpu`` alone is 1."""
    parts = gres.split("(")[0].split(":")
    return int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1


@dataclass(frozen=True)
class Partitions:
    """The cluster's partitions as ``sinfo`` lists them: each one's generic resources (e.g.
    ``{"gpu:a100:4"}``, empty without GPUs), the CPUs and memory (MB) of its largest node
    (absent where ``sinfo`` did not say) and the default partition's name."""

    gres: dict[str, set[str]]
    default: str | None = None
    cpus: dict[str, int] = field(default_factory=dict)
    mem_mb: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, sinfo_output: str) -> Partitions:
        """From ``sinfo --noheader --format=%P|%G|%c|%m`` (:data:`SINFO_FORMAT`; the last two
        fields may be missing)."""
        gres: dict[str, set[str]] = {}
        cpus: dict[str, int] = {}
        mem_mb: dict[str, int] = {}
        default = None
        for line in sinfo_output.splitlines():
            name, resources, node_cpus, node_mem = (line.strip().split("|") + ["", "", ""])[:4]
            if not name:
                continue
            if name.endswith("*"):
                name = default = name[:-1]
            gres.setdefault(name, set()).update(
                g for g in resources.split(",") if g and g != "(null)")
            for table, value in ((cpus, _count(node_cpus)), (mem_mb, _count(node_mem))):
                if value is not None:
                    table[name] = max(table.get(name, 0), value)
        return cls(gres, default, cpus, mem_mb)

    def gpus(self, name: str, gres: str | None = None) -> int:
        """GPUs of partition ``name``'s largest node (of the resource ``gres``, default any
        ``gpu``)."""
        return max((_gpu_count(g) for g in self.gres.get(name, ()) if _has_gpu({g}, gres)),
                   default=0)


def cluster_partitions() -> Partitions | None:
    """The partitions of the cluster ``sinfo`` reaches; ``None`` where ``sinfo`` is missing
    or fails (then nothing is checked against the cluster)."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = _run(["sinfo", "--noheader", f"--format={SINFO_FORMAT}"])
    except (OSError, subprocess.SubprocessError):
        return None
    return Partitions.parse(out.stdout) if out.returncode == 0 else None


def _has_gpu(gres: set[str], name: str | None) -> bool:
    """Whether a node resource list such as ``{"gpu:a100:4(S:0-1)"}`` offers ``name``
    (``gpu`` when ``None``; ``gpu:a100`` matches ``gpu:a100:4``)."""
    want = name or "gpu"
    return any(g == want or g.startswith((want + ":", want + "(")) for g in gres)


def check_cluster(options: SlurmOptions, partitions: Partitions | None = None) -> None:
    """Raise a :class:`ConfigError` naming the option the cluster (per ``sinfo``) cannot
    serve: an unknown partition, GPUs where its nodes have none, a gres it does not offer,
    more CPUs, memory or GPUs per task than the partition's largest node has.
    Without ``sinfo`` nothing is checked; ``sbatch`` then has the last word."""
    if partitions is None:
        partitions = cluster_partitions()
    if partitions is None:
        return
    if options.partition is not None and options.partition not in partitions.gres:
        raise ConfigError(f"--slurm-partition {options.partition}: no such partition on this "
                          f"cluster (sinfo lists: {', '.join(sorted(partitions.gres)) or 'none'})")
    name = options.partition or partitions.default
    if name is None:
        return
    _check_node_size(options, partitions, name)
    if not options.gpus:
        return
    offered = partitions.gres[name]
    if not _has_gpu(offered, options.gres):
        flag = (f"--slurm-gres {options.gres}" if options.gres and offered
                else f"--slurm-gpus {options.gpus}")
        raise ConfigError(f"{flag}: partition {name} has no such GPU (its nodes' generic "
                          f"resources: {', '.join(sorted(offered)) or 'none'}); use "
                          "--slurm-gpus 0 for a CPU partition, or a GPU partition with "
                          "--slurm-partition")
    most = partitions.gpus(name, options.gres)
    if options.gpus > most:
        raise ConfigError(f"--slurm-gpus {options.gpus}: partition {name}'s largest node has "
                          f"{most} GPU{'s' if most != 1 else ''} (sinfo); ask for {most} or "
                          "fewer")


def _check_node_size(options: SlurmOptions, partitions: Partitions, name: str) -> None:
    """CPUs and memory per task against the largest node of partition ``name``."""
    cpus = partitions.cpus.get(name)
    if cpus is not None and options.cpus_per_task > cpus:
        raise ConfigError(f"--slurm-cpus {options.cpus_per_task}: partition {name}'s largest "
                          f"node has {cpus} CPUs (sinfo); ask for {cpus} or fewer")
    mem_mb = partitions.mem_mb.get(name)
    if mem_mb is not None and options.mem_gb * 1024 > mem_mb:
        raise ConfigError(f"--slurm-mem-gb {options.mem_gb}: partition {name}'s largest node "
                          f"has {mem_mb} MB of memory (sinfo); ask for {mem_mb // 1024} GB or "
                          "less")


def queue_states(array_id: str) -> dict[str, str] | None:
    """``{"<array>_<task>": state}`` of the array's tasks that ``squeue`` still lists; ``{}``
    once it lists none (or no longer knows the array); ``None`` if ``squeue`` cannot answer."""
    try:
        out = _run(["squeue", "--noheader", "--array", "--jobs", array_id,
                    "--format=%i|%T"])
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return {} if "Invalid job id" in out.stderr else None
    states = {}
    for line in out.stdout.splitlines():
        task, _, state = line.strip().partition("|")
        if task:
            states[task] = state
    return states
