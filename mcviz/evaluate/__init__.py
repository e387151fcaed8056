"""Measuring a trained model: accuracy (:mod:`.accuracy`), where its channels peak against the CUB
part annotations (:mod:`.localization`, :mod:`.parts`), the images that activate each channel
most (:mod:`.atlas`), the model-randomisation check of the map methods (:mod:`.sanity`) and the
deletion curves of the channel rankings (:mod:`.faithfulness`). Nothing here imports
:mod:`mcviz.train`."""
