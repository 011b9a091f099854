"""ReflectEvo toolkit: command line and Hub layer shared by the generator, trainer and evaluator."""

__version__ = "0.1.0"
