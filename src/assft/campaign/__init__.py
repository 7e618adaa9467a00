"""assft.campaign"""
