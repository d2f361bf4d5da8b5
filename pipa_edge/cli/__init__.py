"""pipa_edge.cli"""
