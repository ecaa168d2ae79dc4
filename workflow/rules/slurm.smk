"""The SLURM account check: every job the slurm executor submits has an account (sbatch -A)."""


class SlurmAccountError(Exception):
    """The slurm executor would submit without an account (the plugin then guesses one)."""


def check_slurm_account():
    """Before the first submission: every job sent to SLURM has an account (sbatch -A).

    Runs at start (onstart), so dry runs, `--report` and runs with nothing to do need no account.
    """
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm":
        return
    for job in workflow.dag.needrun_jobs():
        if (
            not job.is_local
            and not str(job.resources.get("slurm_account") or "").strip()
        ):
            raise SlurmAccountError(
                "no SLURM account: set PHANTOM_SLURM_ACCOUNT to your project "
                "(export PHANTOM_SLURM_ACCOUNT=abc123), used as sbatch -A by --profile frontier"
            )


onstart:
    check_slurm_account()
