"""The reward-shaping study: which reward trains the better generator, with controls and seeds.

    python -m textgym.study run oracle-shaping --budget default --workers 2 --out runs/study
    python -m textgym.study run my-spec.json --shard 2/8 --out /shared/study   # one part of a grid
    python -m textgym.study merge /shared/study                                # join the parts
    python -m textgym.study show oracle-shaping                                # the cells, nothing run
    python -m textgym.study list                                               # built-in specs

A spec (a built-in name, or a JSON or TOML file with the fields of :class:`StudySpec`) names a
grid: each entry of ``grid`` maps config fields (``agent``, ``reward``, ``transform``,
``discriminator``, any other field of the agent's config) to lists of values, and its cells are
their product. Every cell runs once per seed through the one training driver
(:func:`agents.driver.train`), into a run folder of the usual format.

Controls, added to every study:

1. **The shared start.** For each seed, one ``mle`` run with early stopping on a validation split
   (``spec.mle``: the last ``val_size`` training sequences, ``patience`` epochs); every other
   run of that seed warm starts from its best generator. ScratchGAN's recipe trains from scratch;
   here it starts from the same checkpoint as every cell, so that the study compares rewards,
   not initializations.
2. **The MLE control.** For each seed and each number G of generator updates that an adversarial
   cell makes (``adv_steps × g_steps``; for PPO its optimizer steps, ``n_epochs`` passes of
   minibatches over each rollout), MLE continued from the start for G updates, with the
   start's optimizer policy (Adam, ``mle_lr``, ``batch_size`` of the ``mle`` preset).
3. **The no-information control** of every adversarial cell: the same cell with
   ``discriminator = spec.control`` (``constant`` logits by default). Cells that differ only in
   their discriminator share it.

Each finished run is evaluated once more by the study, with the same samples' seed for every
run of a seed (common random numbers make the paired comparisons sharper): at every temperature
of ``spec.temperatures``, NLL-oracle (oracle data), NLL-test, the samples' per-token entropy and,
on corpora, BLEU-2..5 and Self-BLEU-2..5. The temperature sweep is the quality-diversity
frontier (NLL-oracle against NLL-test on the oracle, BLEU-4 against Self-BLEU-4 on corpora),
compared with :func:`textgym.metrics.compare_frontiers`.

**In-filling** (MaskGAN's task, :mod:`agents.infill`): a grid of ``maskgan-infill`` cells makes
an in-filling study (the task is inferred from the grid's agents; one study measures one task).
The start and the MLE control are then ``mle-infill``, the no-information control is
``discriminator="constant"`` (r_t = log 1/2), and the evaluation rebuilds each run's agent from
its checkpoint and calls :meth:`agents.infill.InfillAgent.evaluate_task` at every temperature τ:
the frontier is NLL-oracle of the test sequences completed by sampling at τ (quality) against
``nll_infill``, the NLL of the true blanks under the same tempered distribution (coverage). The
metric names of each task (tables, frontiers, curves, which side is better) are in :data:`TASKS`.

**Class-conditional generation** (:mod:`agents.conditional`): a grid of ``sentigan`` and
``catgan`` cells on ``data="oracle-classes"`` (k = 2 oracles). Their models differ (k
generators, one conditional generator), so each agent starts from its own MLE run: the agent with
its adversarial phases off, for ``spec.mle``'s ``mle_epochs`` (no early stopping), keyed
``"<agent> start"``. Its MLE control is the same agent continuing MLE for as many minibatch
updates of each generator as the adversarial phase makes (``iteration_updates``), its
no-information control ``discriminator="constant"``, and the frontier is NLL-oracle (each sample
under its own class's oracle) against NLL-test given the class, means over classes.

Statistics over seeds (:mod:`textgym.stats`): mean ± sd, and each cell's difference from its
control, from the MLE control and from the MLE start as the mean paired difference (runs of a seed
share the start and the evaluation samples) with a 95% t-interval; an interval that excludes 0
is marked as distinguishable from noise.

Outputs in ``--out``: ``spec.json``, ``cells/s<seed>/<cell>/`` (run folders, each with the
study's ``record.json``), ``results.csv``, ``results.jsonl``, ``report.md`` and ``plots/``.
Rerunning a command skips finished runs and resumes interrupted ones from their checkpoints.
``--shard i/n`` runs every n-th cell (with the starts it needs, trained again in each shard:
they are deterministic on CPU) under ``shards/i-of-n/``; ``merge`` joins what the shards wrote.

This package is the application layer above :mod:`agents` (like ``train.py``); nothing in
``textgym``, ``agents`` or ``discriminators`` imports it.
"""
from textgym.study.cli import build_parser, main
from textgym.study.report import (
                                analyze,
                                best_epoch,
                                frontier_axes,
                                frontier_points,
                                reading,
                                report_markdown,
                                write_outputs,
                                write_plots,
)
from textgym.study.run import collect, evaluate_sweep, run_cell, run_study
from textgym.study.spec import (
                                BUILTIN,
                                NO_INFORMATION,
                                RECORD_FORMAT,
                                SHAPING_AGENTS,
                                SPEC_FORMAT,
                                START_KEY,
                                TASKS,
                                Cell,
                                StudyError,
                                StudySpec,
                                Task,
                                agent_task,
                                expand,
                                load_spec,
                                parse_shard,
                                resolved_for,
                                shard_cells,
                                start_key,
                                start_values,
                                task_of,
)

__all__ = ["BUILTIN", "NO_INFORMATION", "RECORD_FORMAT", "SHAPING_AGENTS", "SPEC_FORMAT", "START_KEY", "TASKS", "Cell",
           "StudyError", "StudySpec", "Task", "agent_task", "analyze", "best_epoch", "build_parser", "collect",
           "evaluate_sweep", "expand", "frontier_axes", "frontier_points", "load_spec", "main", "parse_shard",
           "reading", "report_markdown", "resolved_for", "run_cell", "run_study", "shard_cells", "start_key",
           "start_values", "task_of", "write_outputs", "write_plots"]
