"""assft.finetune"""
