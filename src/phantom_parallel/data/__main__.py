"""``python -m phantom_parallel.data``: the ``phantom-data`` command."""

from phantom_parallel.data.cli import main

raise SystemExit(main())
