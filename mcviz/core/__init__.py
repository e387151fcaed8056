"""The method itself: channel groups (:mod:`.groups`), the MC-Loss (:mod:`.loss`), the soft
channel labels (:mod:`.soft_labels`), the networks (:mod:`.models`) and their ImageNet weights
(:mod:`.pretrained`). Nothing here reads files other than packaged weights."""
