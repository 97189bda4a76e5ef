"""The small, boring core every paper package builds on.

Only what two or more packages use lives here: typed YAML configs (`config`), the CLI skeleton
(`cli`), run directories and atomic writes (`io`), logging and progress bars (`log`), seeding and
device selection (`runtime`), memory meters (`memory`), the side-by-side benchmark harness
(`bench`), metrics (`metrics`), cached seeded generators (`cache`), the offline text corpus
(`text`), the federated round loop (`fl`), imitation-learning pieces (`il`) and the human-motion
video generator (`motion`). Nothing paper-specific lives here.
"""

from shared.errors import ConfigError, DataError, UserError

__all__ = ["ConfigError", "DataError", "UserError"]
