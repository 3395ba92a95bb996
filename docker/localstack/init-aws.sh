#!/bin/sh
# LocalStack "ready" hook: the buckets, the queues with their dead-letter queues, and the
# S3 notification the CDK stack creates on AWS. Queue settings mirror the catalog in
# packages/queue/src/contracts.ts (infra/test/docker.test.ts keeps the two in step).
set -eu

create_queue() { # name visibility-timeout max-receive-count
  dlq_url=$(awslocal sqs create-queue --queue-name "$1-dlq" --query QueueUrl --output text)
  dlq_arn=$(awslocal sqs get-queue-attributes --queue-url "$dlq_url" --attribute-names QueueArn --query Attributes.QueueArn --output text)
  awslocal sqs create-queue --queue-name "$1" --attributes "{\"VisibilityTimeout\":\"$2\",\"RedrivePolicy\":\"{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"$3\\\"}\"}" >/dev/null
}

create_queue ingest 60 5
create_queue large 300 3
create_queue small 120 5
create_queue single-page 120 5
create_queue converted-image 120 8
create_queue parked 300 100

awslocal s3 mb s3://docpipe-staging
awslocal s3 mb s3://docpipe-work
image_queue_arn=$(awslocal sqs get-queue-attributes \
  --queue-url "$(awslocal sqs get-queue-url --queue-name converted-image --query QueueUrl --output text)" \
  --attribute-names QueueArn --query Attributes.QueueArn --output text)
awslocal s3api put-bucket-notification-configuration --bucket docpipe-work --notification-configuration "{
  \"QueueConfigurations\": [{
    \"QueueArn\": \"$image_queue_arn\",
    \"Events\": [\"s3:ObjectCreated:*\"],
    \"Filter\": {\"Key\": {\"FilterRules\": [{\"Name\": \"prefix\", \"Value\": \"batches/\"}, {\"Name\": \"suffix\", \"Value\": \".png\"}]}}
  }]
}"
echo "docpipe: buckets, queues and the image notification are ready"
