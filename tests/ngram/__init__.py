"""Tests of lm.ngram."""
