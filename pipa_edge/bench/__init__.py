"""pipa_edge.bench"""
