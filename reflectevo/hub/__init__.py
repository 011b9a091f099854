"""Hub layer: a local Hub-compatible server (``server``, ``store``) and the helpers the generator,
trainer and evaluator use to publish and pull by revision (``client``). Importing this package
imports no Hub library; call ``client.configure_endpoint_env()`` before importing huggingface_hub."""
