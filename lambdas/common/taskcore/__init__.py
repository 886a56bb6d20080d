"""Domain core shared by the Task Manager's Lambdas: the task model, its
statuses and the DynamoDB item mapping. Plain Python: no handler concerns."""
