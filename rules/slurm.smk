# The workflow's adapter to snakemake-executor-plugin-slurm 2.8.0 (pinned in constraints.txt), for three faults a
# study meets on a production cluster (docs/slurm.md: each reproduced, and the reports for upstream):
#  - sacct reads a cancelled job as `CANCELLED by <uid>`, a state the plugin does not know, so it polled such a job as
#    running for ever: states are read by their first word (compresslib.slurm.job_state), and the job is retried;
#  - a job whose node failed is requeued by SLURM, and the plugin took its node list, `None assigned` once the job
#    waits again, for a node name to exclude, which broke every later sbatch: with requeueing on, SLURM keeps a down
#    node out of scheduling itself and no node is excluded; otherwise only real node names are;
#  - a group's members run one after another (the job-step plugin runs them with --jobs 1), yet the group asked for
#    every member's GPUs side by side and one member's time: it asks for its largest member's GPUs, CPUs and memory
#    and the members' summed runtime (compresslib.slurm.sequential_request).
# The plugin's module functions are looked up when called, so wrapping them here (before any job runs) is enough.
from importlib.metadata import PackageNotFoundError, version

from snakemake.iocontainers import ResourceList
from snakemake.logging import logger

from compresslib.slurm import job_state, node_names, sequential_request

ADAPTED_VERSION = "2.8.0"  # the adapter wraps this version's module functions; another version is left alone


class FailedNodes(set):
    """The plugin's set of nodes to exclude from later submissions: real node names only, none while SLURM
    requeues the jobs of a failed node."""

    def __init__(self, nodes, requeue):
        super().__init__(nodes)
        self.requeue = requeue

    def add(self, nodelist):
        if not self.requeue:
            self.update(node_names(nodelist))


class PackedJob:
    """A group job as SLURM must see it: members one after another (see sequential_request)."""

    def __init__(self, group):
        self._group = group
        request = sequential_request(dict(member.resources.items()) for member in group.jobs)
        self.resources = ResourceList(fromdict={**dict(group.resources.items()), **request})

    @property
    def threads(self):
        return self.resources["_cores"]

    def __getattr__(self, name):
        return getattr(self._group, name)


def _adapt(plugin):
    query = plugin.query_job_status

    async def query_job_status(command, logger):
        states, seconds = await query(command, logger)
        return (None if states is None else {job: job_state(state) for job, state in states.items()}), seconds

    post_init = plugin.Executor.__post_init__

    def __post_init__(self, *args, **kwargs):
        post_init(self, *args, **kwargs)
        self._failed_nodes = FailedNodes(self._failed_nodes, self.workflow.executor_settings.requeue)

    def packed(function):
        return lambda job, *args, **kwargs: function(PackedJob(job) if job.is_group() else job, *args, **kwargs)

    plugin.query_job_status = query_job_status
    plugin.Executor.__post_init__ = __post_init__
    plugin.get_submit_command = packed(plugin.get_submit_command)
    plugin.set_gres_string = packed(plugin.set_gres_string)
    plugin.compresslib_adapted = True


try:
    _installed = version("snakemake-executor-plugin-slurm")
except PackageNotFoundError:  # no SLURM plugin: nothing to adapt
    _installed = None
if _installed == ADAPTED_VERSION:
    import snakemake_executor_plugin_slurm

    if not getattr(snakemake_executor_plugin_slurm, "compresslib_adapted", False):
        _adapt(snakemake_executor_plugin_slurm)
elif _installed is not None:
    logger.warning(f"snakemake-executor-plugin-slurm {_installed} is not the {ADAPTED_VERSION} of constraints.txt: "
                   "the workflow's adapter to it is off (docs/slurm.md)")
