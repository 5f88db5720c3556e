"""The one data converter every client and worker uses: pydantic v2 models on the wire as JSON."""

from temporalio.contrib.pydantic import pydantic_data_converter

DATA_CONVERTER = pydantic_data_converter
