# The workflow's adapter to snakemake-executor-plugin-slurm 2.8.0 and its job-step plugin 0.6.1 (pinned in
# constraints.txt), for three faults a study meets on a production cluster and for GPUs shared by several jobs
# (docs/slurm.md: each fault reproduced, and the reports for upstream):
#  - sacct reads a cancelled job as `CANCELLED by <uid>`, a state the plugin does not know, so it polled such a job as
#    running for ever: states are read by their first word (compresslib.slurm.job_state), and the job is retried;
#  - a job whose node failed is requeued by SLURM, and the plugin took its node list, `None assigned` once the job
#    waits again, for a node name to exclude, which broke every later sbatch: with requeueing on, SLURM keeps a down
#    node out of scheduling itself and no node is excluded; otherwise only real node names are;
#  - a rule's `gpu` counts GPU slots (compresslib.gpu_slots): a job or a group asks SLURM for the GPUs that hold its
#    slots (a group's members' slots added up, as Snakemake adds up their CPUs and memory), or, on a site with
#    `shard` GRES and COMPRESSLIB_SLURM_GPU_SHARING=shard, a job that needs less than a GPU for that many shards;
#  - the job-step plugin ran a group's members one after another (--jobs 1, and each job step waited for): inside the
#    SLURM job they run side by side, each a job step that shares the job's GPUs with the others (srun --overlap).
# The plugins' module functions are looked up when called, so wrapping them here (before any job runs, also in the
# job's own Snakemake process, which reads this file too) is enough.
import importlib
import threading
from importlib.metadata import PackageNotFoundError, version

from snakemake.iocontainers import ResourceList
from snakemake.logging import logger

from compresslib.gpu_slots import slots_per_gpu
from compresslib.slurm import gpu_sharing, job_state, node_names, side_by_side, slot_request, step_gpu_options

# the adapter wraps these versions' module functions; other versions are left alone
ADAPTED_VERSIONS = {"snakemake-executor-plugin-slurm": "2.8.0", "snakemake-executor-plugin-slurm-jobstep": "0.6.1"}


class FailedNodes(set):
    """The plugin's set of nodes to exclude from later submissions: real node names only, none while SLURM
    requeues the jobs of a failed node."""

    def __init__(self, nodes, requeue):
        super().__init__(nodes)
        self.requeue = requeue

    def add(self, nodelist):
        if not self.requeue:
            self.update(node_names(nodelist))


class SlotJob:
    """A job (or a group job) as SLURM must see it: its `gpu` resource, in GPU slots, as the GPUs that hold them, or
    with COMPRESSLIB_SLURM_GPU_SHARING=shard as shards of a GPU (compresslib.slurm.slot_request)."""

    def __init__(self, job):
        self._job = job
        request = slot_request(dict(job.resources.items()), slots_per_gpu(), gpu_sharing())
        self.resources = ResourceList(fromdict=request)

    def __getattr__(self, name):
        return getattr(self._job, name)


def _adapt_submission(plugin):
    query = plugin.query_job_status

    async def query_job_status(command, logger):
        states, seconds = await query(command, logger)
        return (None if states is None else {job: job_state(state) for job, state in states.items()}), seconds

    post_init = plugin.Executor.__post_init__

    def __post_init__(self, *args, **kwargs):
        post_init(self, *args, **kwargs)
        self._failed_nodes = FailedNodes(self._failed_nodes, self.workflow.executor_settings.requeue)

    general_args = plugin.Executor.additional_general_args

    def in_slots(function):  # get_submit_command calls set_gres_string with the job it was given: convert it once
        return lambda job, *args, **kwargs: function(job if isinstance(job, SlotJob) else SlotJob(job), *args, **kwargs)

    plugin.query_job_status = query_job_status
    plugin.Executor.__post_init__ = __post_init__
    plugin.Executor.additional_general_args = lambda self: side_by_side(general_args(self))
    plugin.get_submit_command = in_slots(plugin.get_submit_command)
    plugin.set_gres_string = in_slots(plugin.set_gres_string)


def _adapt_job_steps(plugin):
    run_job = plugin.Executor.run_job

    def get_gpu_setting(job):  # members share the job's GPUs or shards, and its CPUs
        return step_gpu_options(int(job.resources.get("gpu", 0)), slots_per_gpu(), gpu_sharing())

    def run_job_alongside(self, job):
        # the plugin's run_job waits for its job step; in a thread, the next member's step starts meanwhile
        threading.Thread(target=run_job, args=(self, job), name=f"job step of {job}").start()

    plugin.get_gpu_setting = get_gpu_setting
    plugin.Executor.run_job = run_job_alongside


def _adapted(package, module, adapt):
    """Adapt the plugin ``package`` (imported as ``module``) once per process, if it is the version this file knows."""
    try:
        installed = version(package)
    except PackageNotFoundError:  # not installed: nothing to adapt
        return
    if installed != ADAPTED_VERSIONS[package]:
        logger.warning(f"{package} {installed} is not the {ADAPTED_VERSIONS[package]} of constraints.txt: the "
                       "workflow's adapter to it is off (docs/slurm.md)")
        return
    plugin = importlib.import_module(module)
    if not getattr(plugin, "compresslib_adapted", False):
        adapt(plugin)
        plugin.compresslib_adapted = True


_adapted("snakemake-executor-plugin-slurm", "snakemake_executor_plugin_slurm", _adapt_submission)
_adapted("snakemake-executor-plugin-slurm-jobstep", "snakemake_executor_plugin_slurm_jobstep", _adapt_job_steps)
