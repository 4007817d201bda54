"""Dependencies that routes declare; the objects behind them live on `app.state`."""

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.services.chat import ChatService


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_chat_service(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat_service
    return service


SettingsDep = Annotated[Settings, Depends(get_settings)]
ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]
