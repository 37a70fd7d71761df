{{ batch_latest_model('care_site') }}
