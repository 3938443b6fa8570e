SELECT vtime FROM fair_clock WHERE id = 1
