"""Amazon Bedrock (Converse/ConverseStream): SigV4 signing, the AWS credential chain, the
AWS event-stream decoder and the Converse wire conversions, one small module each."""

from llm_gateway.providers.bedrock.provider import BedrockProvider, build_bedrock

__all__ = ["BedrockProvider", "build_bedrock"]
