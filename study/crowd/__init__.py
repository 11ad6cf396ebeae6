"""The crowd stage: study design, HIT pages, image hosting, publication, collection, quality
control and payments. It talks to a marketplace only through boto3."""
