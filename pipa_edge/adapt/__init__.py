"""pipa_edge.adapt"""
