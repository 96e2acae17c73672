"""Image and text classifier runs: the one training loop (teachers, students, QD, DQ, LIT, ESNAC's full trainings),
post-training quantization, and a teacher's table of logits per augmented view."""
