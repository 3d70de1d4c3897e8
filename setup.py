"""Packaging lives in pyproject.toml; this file only lets legacy tools find it."""
from setuptools import setup

setup()
