"""Demos built on the library: ``toy`` (the 2-D Swiss roll of the paper's Appendix C.8, ``genpolicy toy``)."""
