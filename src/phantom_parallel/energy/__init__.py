"""Energy subsystem: power sampling during a run and energy extraction afterwards.

Modules, one job each:

- :mod:`.units` -- unit constants (J, W, ns) and tolerant number parsing;
- :mod:`.timestamps` -- wall-clock stamps (ISO 8601, ``date +%s.%N``, sampler stamps) to ns;
- :mod:`.records` -- the parsed-sample data model shared by all parsers;
- :mod:`.formats` -- one parser per tool output format (rocm-smi, amd-smi, nvidia-smi, NVML, RAPL);
- :mod:`.sources` -- how each source is polled on a live machine;
- :mod:`.sampler` -- :func:`start_sampler`, the background sampler used by the trainer;
- :mod:`.integrate` -- energy of one device over a window (counter difference, trapezoid);
- :mod:`.attribution` -- MI250X primary/secondary GCD attribution, packages, nodes;
- :mod:`.windows` -- measured windows and epochs from the trainer's ``events.jsonl``;
- :mod:`.report` -- the per-run energy table (``energy.json`` / ``energy.csv``), power model;
- :mod:`.cli` -- the ``phantom-energy`` command.
"""
