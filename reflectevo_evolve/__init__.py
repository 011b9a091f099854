"""The self-evolution loop (`reflectevo evolve`): generate, curate, publish, train and evaluate, round
after round. The top floor: it drives reflectevo_gen, reflectevo_train, the lm-eval model and the
leaderboard, and nothing below imports it."""
