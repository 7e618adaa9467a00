"""assft.cli"""
