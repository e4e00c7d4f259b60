"""Checks of what training already built from a dataset: the trainers' index cache files and their logs."""
