"""Routing across a model's targets: balancing strategies, circuit breakers, budgets, cool-downs, health checks.

policy.py is the TargetPolicy the gateway's flow calls (tollway.gateway.hooks); state.py holds what is
known of each upstream target; strategies.py, breaker.py, budgets.py and health.py one concept each.
"""
