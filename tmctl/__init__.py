"""tmctl: bring the Task Manager stack up locally or on AWS, and live with it."""

__version__ = "0.1.0"
