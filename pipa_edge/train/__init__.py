"""pipa_edge.train"""
