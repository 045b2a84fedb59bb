"""Shared vision code below the steps: image decode/encode, detectors and weights, lane models, previews."""
