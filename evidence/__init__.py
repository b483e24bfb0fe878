"""The repository's evidence: its committed runs and the pages made from them.

What only this repository needs, kept out of what ``pip install`` ships
(``setup.cfg`` packages ``bcjax`` and ``experiments`` alone): the list of
committed runs and the parts they are merged from (:mod:`evidence.runs`),
the verdicts against the reference notebook's Table 3
(:mod:`evidence.verdicts`), and the command that writes the README's
summary and ``docs/``'s generated sections from the committed files
(``python -m evidence.report``, run from the repository's root). A user's
own runs need none of it: ``experiments.compare`` and ``experiments.merge``
write a run's tables, plots and ``results.json``.
"""
