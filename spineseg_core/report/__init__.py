"""Analysis the book calls: formatted tables, the setup facts of a results bundle, the paper's
deviations, figures and the claims' verdicts. The chapters only call these and glue the output."""
