"""`python -m sqlnet.bench`: see ``sqlnet.bench``."""

from sqlnet.bench import main

main()
