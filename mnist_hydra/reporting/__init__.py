"""Reporting: the test-set evaluation, the plots, and the summary of a sweep."""
