"""Analysis and packaging for the book: what the chapters show, computed and tested here."""
