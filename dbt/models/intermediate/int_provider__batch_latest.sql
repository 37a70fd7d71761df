{{ batch_latest_model('provider') }}
