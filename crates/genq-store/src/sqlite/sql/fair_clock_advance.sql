UPDATE fair_clock SET vtime = max(vtime, :tag) WHERE id = 1
