"""One training at a time per process.

torch's dropout and initialisation draw from one process-wide generator: trainings in threads of
one process take turns so that each is exactly reproducible from its seed. (Kept in its own
module and reached through it, so that task functions pickled by value for a Dask worker do not
carry the lock itself.)"""

from __future__ import annotations

import threading

TRAINING = threading.Lock()
