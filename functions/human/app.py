"""Lambda function for Loopline human steps: thin, the work is in the loopline layer."""

from loopline.runtime.lambda_entry import lambda_handler

handler = lambda_handler()
