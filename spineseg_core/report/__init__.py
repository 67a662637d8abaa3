"""Analysis the book calls: tested rules and tables over a results bundle, so that no chapter
computes a finding itself."""
