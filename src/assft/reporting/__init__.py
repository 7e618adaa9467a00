"""assft.reporting"""
