r"""The paper's hyper-parameters (Hu et al., KDD 2022): hours on a GPU.

(layers, dim) = (2,256), (2,320), (3,384), (3,448), (3,512); 500 epochs per
version, evaluated every 10; Adam 1e-3, batch 2048; consumers over the full
grid with 10 seeds and 300 epochs; 3 embedding seeds, each a whole run with
its own M_0, for the table's intervals. The methods' hyperparameters are the
paper's (``config.method.joint.keep_after`` 50, ``config.method.posthoc``
200 epochs keeping the best after 50, ``config.method.finetune_m0.epochs``
250, lambda ``config.method.joint.align_weight`` 16).

Command (Amazon Musical Instruments, files from the Amazon Review Data 2018)::

  python -m experiments.compare --workdir=/tmp/bcjax_paper \
      --config=experiments/configs/paper.py \
      --config.dataset=amazon-Musical_Instruments --config.data_dir=DIR

Expected result: the paper's Table 3 for Musical Instruments (DESIGN §5
anchor: fix-m0 -26.8 / 0, nobc 0 / -26.5, BC-Aligner -3.0 / -0.65). Not yet
run with bcjax: it needs the Amazon files and hours on an accelerator.
"""

from experiments.configs import default


def get_config():
  """The paper's hyper-parameters."""
  config = default.get_config()
  config.dims = (256, 320, 384, 448, 512)
  config.layers = (2, 2, 3, 3, 3)
  config.epochs = 500
  config.learning_rate = 1e-3
  config.eval_every = 10
  config.eval_chunk_size = 1024
  config.method.joint.keep_after = 50
  config.method.posthoc.epochs = 200
  config.method.posthoc.keep_after = 50
  config.method.finetune_m0.epochs = 250
  config.consumer.hidden_sizes = (128, 256, 512, 1024)
  config.consumer.dropouts = (0.0, 0.25, 0.5)
  config.consumer.seeds = 10
  config.consumer.epochs = 300
  config.num_seeds = 3
  return config
