"""Sources: where the libraries to audit are (directories, site-packages, import names)."""
