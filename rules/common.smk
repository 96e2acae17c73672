"""Config validation, and the thin adapters between the rules and the jobs compresslib plans for the config.

Every job of the DAG is planned once by compresslib.experiments (its families' modules); a rule asks the plan for
the job its wildcards name (a path no experiment asks for is refused with its name) and takes the job's input
files and script arguments from it.
"""

import os
import json
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.settings.types import DeploymentMethod, GlobalReportSettings
from snakemake_interface_report_plugins.registry import ReportPluginRegistry
from snakemake.utils import validate

from compresslib import experiments
from compresslib.report import TABLES_SUBCATEGORY, table_pages
from compresslib.config import ConfigError, format_problems, load_schema, schema_errors
from compresslib.gpu_slots import slots_per_gpu
from compresslib.slurm import gpu_sharing
from compresslib.specs.esnac import arch_file

SCHEMA = os.path.join(workflow.basedir, "rules", "schemas", "config.schema.yaml")
try:
    validate(config, schema=SCHEMA)  # types, ranges, allowed values; fills the defaults
except WorkflowError:
    raise WorkflowError(format_problems(schema_errors(config, load_schema(SCHEMA)))) from None
try:
    STUDY = experiments.check_config(config)  # references between entries, registered names; every job's settings
except ConfigError as error:
    raise WorkflowError(str(error)) from None

# Jobs import compresslib from this checkout. Without `--sdm conda` they also run the interpreter
# Snakemake runs in, so its virtualenv need not be activated.
# (Snakemake formats the prefix too, hence the doubled braces inside the f-string's doubled braces.)
_PREFIX = f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    _PREFIX += f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
shell.prefix(_PREFIX)
SOFTWARE_ENV = "envs/compresslib.yaml"  # for `--sdm conda`; relative to the rules/ files
try:  # each training rule's `gpu`, in GPU slots: locally --resources gpu=<GPUs x slots> caps the jobs running at once;
    # on SLURM the adapter (rules/slurm.smk) asks for the GPUs that hold a job's (or a group's) slots
    GPUS_PER_JOB = experiments.gpus_per_job()
    SLOTS_PER_GPU = slots_per_gpu()
    gpu_sharing()  # checked before any job, though only the SLURM adapter (rules/slurm.smk) reads it
except ConfigError as error:
    raise WorkflowError(str(error)) from None


def gpu_slots(job_type):
    """A training rule's `gpu` resource, in slots (compresslib.gpu_slots): one for a job that shares a GPU (a student),
    a whole GPU's for the others, none on a cluster without GPUs. The job leases as many (COMPRESSLIB_JOB_GPU_SLOTS)."""
    return GPUS_PER_JOB * (1 if job_type.SHARES_GPU else SLOTS_PER_GPU)


def job_priority(job_type):
    """A rule's priority: how many planned jobs wait for the job (a teacher before the students that read it)."""
    return lambda wildcards: STUDY.dependents(planned(job_type, wildcards))


wildcard_constraints:
    **experiments.wildcard_constraints(config),


def script(name):
    """Path of workflow_scripts/<name> relative to the working directory (also under --directory)."""
    return os.path.relpath(os.path.join(workflow.basedir, "workflow_scripts", name))


def planned(job_type, wildcards):
    """The planned job of ``job_type`` that a rule's wildcards name."""
    try:
        return STUDY.job(job_type, wildcards)
    except ConfigError as error:
        raise WorkflowError(str(error)) from None


def job_inputs(job_type, script_name=None):
    """A rule's input function: the files its job reads, with its workflow script."""

    def inputs(wildcards):
        files = planned(job_type, wildcards).inputs(STUDY)
        return {"script": script(script_name), **files} if script_name else files

    return inputs


def job_arguments(job_type):
    """A rule's params function: its job's script arguments, from the wildcards alone (Snakemake compares the params
    of earlier runs only when they need no `input`)."""
    return lambda wildcards: planned(job_type, wildcards).arguments(STUDY)


def checkpoint_records(checkpoint, output, job_type, wildcards):
    """The records of the jobs of ``job_type`` a checkpoint job fans out to: one per ``<rank>`` of the
    ``arch-<rank>.pt`` files in its ``output`` folder, known once it has finished (so each fans out at once)."""
    folder = getattr(checkpoint.get(**wildcards).output, output)
    ranks = sorted(int(rank) for rank in glob_wildcards(os.path.join(folder, arch_file("{rank,\\d+}"))).rank)
    return [planned(job_type, {**wildcards, "rank": rank}).outputs()["record"] for rank in ranks]


# Runs that started and did not finish. Snakemake runs a job whose outputs are missing only when a job after it must
# run, so a job run again on purpose (--forcerun, -f, a changed setting with --until) and stopped would stay
# unfinished while the jobs after it look up to date. The default target asks for their records: they run again,
# resuming from their checkpoints, and the jobs after them rerun on their newer outputs. Only the main process plans
# (a cluster job's own Snakemake would see every running job's folder).
UNFINISHED = experiments.unfinished_runs(STUDY.jobs) if workflow.is_main_process else []
if UNFINISHED:
    logger.info(f"{len(UNFINISHED)} run(s) started and did not finish (a run folder without its record.json); the "
                "default target runs them again, resuming from their last checkpoints, and the jobs after them:\n    "
                + "\n    ".join(job.folder() for job in UNFINISHED))


def unfinished_records(wildcards):
    """The records of the unfinished runs. One that a checkpoint job's outputs name (an ESNAC full training reads an
    architecture of its search's top/) is asked for once that job is done, so that Snakemake orders it after a rerun
    of the checkpoint job (else its input would look like a file no job makes)."""
    for job in UNFINISHED:
        if (source := job.checkpoint()) is not None:
            getattr(checkpoints, source.rule).get(**source.wildcards())
    return [job.outputs()["record"] for job in UNFINISHED]


AGGREGATED = experiments.aggregate_inputs(STUDY)  # the record files (and lists of them) aggregation reads
AGGREGATE_EXPERIMENTS = experiments.aggregation_experiments(config)
TABLES = [str(path) for path in experiments.table_paths("results/tables")]
PLOTS = [str(path) for path in experiments.plot_paths(AGGREGATE_EXPERIMENTS, "results/plots")]
# the report's pages (compresslib.report): every table rendered, and the front page
REPORT_FRONT_PAGE = "results/report/study.rst"
REPORT_TABLE_PAGES = table_pages(experiments.report_tables("results/tables"), "results/report/tables")


def build_report(path):
    """Snakemake's HTML report of this run's DAG at ``path``; a failure is logged, not raised: the run succeeded."""
    plugin = ReportPluginRegistry().get_plugin("html")
    try:
        workflow.create_report(plugin, plugin.settings_cls(path=Path(path)), GlobalReportSettings())
    except Exception as error:  # noqa: BLE001 - Snakemake raises WorkflowError and others alike here
        logger.warning(f"the report {path} could not be built: {error}")
    else:
        logger.info(f"report: {os.path.abspath(path)} (open it in a browser)")
