"""Domain core shared by the Task Manager's Lambdas: the task contract
(contract.py, which tmctl loads too), the task model and the DynamoDB item
mapping. Plain Python: no handler concerns."""
