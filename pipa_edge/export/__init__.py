"""pipa_edge.export"""
