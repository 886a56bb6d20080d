"""Typer commands: parse options, call one core function, render the result.
Modules here import boto3/rich lazily so `tmctl --help` stays fast."""
