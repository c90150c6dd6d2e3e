"""`python -m tfprune_survey`: the `tfprune-survey` command line."""

from tfprune_survey import cli

if __name__ == "__main__":
  cli.run()
