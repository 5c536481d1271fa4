"""Rules: the facts readers extract -> verdicts and findings, driven by generated data tables.

``torch_abi`` (+ ``itanium``, ``msvc``, ``torch_table``) and ``cpython_abi`` judge one library;
``load_prediction`` predicts whether it loads on a torch. The finding rules (``metadata_checks``,
``torch_findings``, ``python_findings``) judge a package from its libraries' facts; every code
they emit is declared in ``registry`` and every rule is listed in ``pipeline``. Rules never read
files nor import sources: their messages are plain text that renderers place.
"""
