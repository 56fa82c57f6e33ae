"""Python packaging for echoloc; metadata and entry points live in setup.cfg."""
from setuptools import setup

setup()
