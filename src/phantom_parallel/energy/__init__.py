"""Energy subsystem: power sampling during a run and energy extraction afterwards.

Modules, one job each:

- :mod:`.units` -- unit constants (J, W, ns) and tolerant number parsing;
- :mod:`.timestamps` -- wall-clock stamps (ISO 8601, ``date +%s.%N``, sampler stamps) to ns;
- :mod:`.records` -- the parsed-sample data model shared by all parsers;
- :mod:`.formats` -- one parser per tool output format (rocm-smi, amd-smi, nvidia-smi, NVML,
  RAPL, Cray pm_counters);
- :mod:`.source_types`, :mod:`.sources`, :mod:`.cray` -- how each source is polled on a live
  machine;
- :mod:`.sampler` -- :func:`start_sampler`, the background sampler used by the trainer;
- :mod:`.devices`, :mod:`.ranks` -- the device behind each rank, the devices a run used;
- :mod:`.polls` -- which devices each poll should have read and what it missed;
- :mod:`.integrate` -- energy of one device over a window (counter difference, trapezoid);
- :mod:`.attribution` -- MI250X primary/secondary GCD attribution, packages, nodes;
- :mod:`.measure` -- energy of one node's log over the measured windows;
- :mod:`.windows` -- measured windows and epochs from the trainer's ``events.jsonl``;
- :mod:`.work` -- steps and samples the energy is divided by;
- :mod:`.model` -- the documented power model when no sensor exists;
- :mod:`.report`, :mod:`.table` -- the per-run energy table (``energy.json`` / ``energy.csv``);
- :mod:`.run_folder` -- a run folder's logs, work and energy report (``extract``);
- :mod:`.checks` -- the command's checks of its flags, before anything is written;
- :mod:`.cli` -- the ``phantom-energy`` command.
"""
