"""What the frozen pretrained trunk computes once and keeps: its outputs per data set and view
(:mod:`.cache`, ``--freeze``) and, beside them, CUB's parts as the part locator's targets
(:mod:`.part_targets`). One floor above :mod:`mcviz.data`, :mod:`mcviz.core` and :mod:`mcviz.io`: it
needs a model and writes files."""
