"""``seqkit compare``: one recipe trained once per layer (and seed, and sequence length), measured.

What the documents claim in a table -- a simple RNN cannot handle long sequences, the LSTM is
slower and heavier, the GRU is faster with fewer parameters and performs well -- becomes a
measurement on the user's own recipe:

1. **Plan** (``plan_compare``; nothing is trained). Every recurrent layer of the recipe is
   swapped for each layer named (registry names: ``gru``, ``lstm``, ``rnn``, ``keras_gru``,
   plugin layers), keeping the parameters the new layer takes (``units``, ``dropout``, ...).
   ``match='units'`` keeps the recipe's units; ``match='params'`` solves each layer's units so
   its trainable parameter count is within ``MATCH_TOLERANCE`` (2 %) of the first layer's (all
   recurrent layers of a recipe scaled together). Unknown layers (did-you-mean), layers that
   are not recurrent, layers that cannot be matched (and why), a ``--lengths`` sweep over a
   source without ``length``, and an existing ``--out`` are refused here. Then one training
   step per layer is timed at the longest length, and the whole budget estimated from it
   (epochs x steps per epoch x runs, plus start-up); above ``budget_minutes`` the plan is
   refused unless ``yes``.
2. **Run** (``run_plan``). Each (length, layer, seed) is trained by ``seqkit.train.train`` in a
   fresh worker process (``python -m seqkit.compare --worker``), so that timings and memory are
   not coloured by earlier runs, into ``OUT/runs/<id>/`` -- an ordinary run folder. The worker
   measures the training time of each epoch (first batch to last, validation excluded), the
   peak resident memory during training above the process's memory when training starts
   (sampled every 5 ms), the inference time per sequence (the best model on a batch of 64
   test sequences, median of 10 calls) and, with ``gradients``, the gradient flow
   (``seqkit.gradflow``) of the model at initialisation and of the best model.
3. **Report** (``write_report``): ``compare.md`` / ``compare.csv`` (one row per layer and
   length: parameters, training seconds per epoch, inference ms per sequence, peak memory, best
   validation metric, test metric, each the mean +- the standard deviation over seeds),
   ``runs.csv`` (one row per run), ``curves.png`` (validation curves), and with several lengths
   ``sweep.md`` / ``sweep.csv`` / ``sweep.png`` (at which length each layer stops learning),
   with gradients ``gradients.png`` / ``gradients.csv``. ``compare.json`` holds everything.

Seeds: seed ``i`` trains with recipe seed ``recipe.seed + i`` (weights, batch order); the data
(a generated source's own ``seed``) stays the same, so runs differ only by initialisation.

The code: ``common`` (settings, ``Candidate``, ``Plan``), ``plan``, ``run``, ``worker`` (also
``python -m seqkit.compare --worker``) and ``report``; everything is importable from here.
"""

from .common import (  # noqa: F401
    DEFAULT_BUDGET_MINUTES,
    GRADIENT_EXAMPLES,
    INFERENCE_BATCH,
    MATCH_TOLERANCE,
    MATCHES,
    MAX_UNITS,
    RUN_OVERHEAD_S,
    Candidate,
    Plan,
)
from .plan import (  # noqa: F401
    check_layers,
    format_seconds,
    parse_list,
    plan_compare,
    solve_units,
    trainable_params,
    variant_doc,
)
from .report import (  # noqa: F401
    markdown_table,
    summarize,
    sweep_table,
    write_report,
)
from .run import (  # noqa: F401
    _run_worker,
    jobs,
    run_id,
    run_plan,
)
from .worker import (  # noqa: F401
    worker,
)
